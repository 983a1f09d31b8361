/* The resource dashboard's charts (Chart.js): allocated against measured per node (cores
 * and memory, the 95th percentiles) and per resource group (core-seconds).
 *
 * The numbers come embedded in the page (json_script); colours are the names the
 * choices carry, read back from the badge styles as static/js/overview.js does. */
(function () {
  "use strict";

  var cssColors = {};

  function badgeColor(name, alpha) {
    if (!cssColors[name]) {
      var probe = document.createElement("span");
      probe.className = "badge badge-" + name;
      probe.style.display = "none";
      document.body.appendChild(probe);
      cssColors[name] = getComputedStyle(probe).color;
      probe.remove();
    }
    var rgb = cssColors[name].match(/\d+(\.\d+)?/g) || ["0", "0", "0"];
    return "rgba(" + rgb.slice(0, 3).join(", ") + ", " + alpha + ")";
  }

  function bars(labels, allocated, measured, colors, measuredColors, unit) {
    return {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          {
            label: "Allocated",
            data: allocated,
            backgroundColor: badgeColor(colors.allocated, 0.35)
          },
          {
            label: "Measured (p95)",
            data: measured,
            backgroundColor: measuredColors || badgeColor(colors.measured, 0.75)
          }
        ]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12 } },
          tooltip: {
            callbacks: {
              label: function (item) {
                var value = item.raw === null || item.raw === undefined ? "—" : item.raw + " " + unit;
                return " " + item.dataset.label + ": " + value;
              }
            }
          }
        },
        scales: {
          x: { grid: { display: false }, ticks: { autoSkip: false, maxRotation: 60 } },
          y: { beginAtZero: true, title: { display: true, text: unit } }
        }
      }
    };
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chartSource);
    if (!source || typeof Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var colors = data.colors;
    var nodes = data.nodes;
    // Each node's measured bar takes its flag's colour.
    var flagged = nodes.flags.map(function (flag) { return badgeColor(colors[flag] || "blue", 0.75); });
    var config;
    if (canvas.dataset.chart === "node_cpu") {
      config = bars(nodes.labels, nodes.allocated_cpu, nodes.avg_cores_p95, colors, flagged, "cores");
    } else if (canvas.dataset.chart === "node_memory") {
      config = bars(nodes.labels, nodes.allocated_memory_mb, nodes.peak_memory_mb_p95, colors, flagged, "MB");
    } else {
      config = bars(
        data.groups.labels, data.groups.allocated_cpu_seconds, data.groups.cpu_seconds, colors, null, "core-seconds"
      );
      config.data.datasets[1].label = "Used";
    }
    var previous = Chart.getChart(canvas);
    if (previous) previous.destroy();
    new Chart(canvas, config);
    canvas.dataset.chartReady = "true";
  }

  function drawAll() {
    document.querySelectorAll("canvas[data-chart-source]").forEach(function (canvas) {
      if (canvas.dataset.chartReady !== "true") draw(canvas);
    });
  }

  document.addEventListener("DOMContentLoaded", drawAll);
})();
