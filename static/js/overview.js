/* The O&M overview's run trend chart (Chart.js).
 *
 * The numbers come embedded in the page (json_script); the colours are the names the
 * state choices carry ("green", "red"...), turned into the same colours the badges use
 * by reading them back from the stylesheet, so a state looks the same everywhere. */
(function () {
  "use strict";

  var cssColors = {};

  // "green" -> the text colour of .badge-green in opscenter.css.
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

  function formatSeconds(value) {
    if (value === null || value === undefined) return "—";
    if (value < 60) return value.toFixed(1) + "s";
    var whole = Math.round(value);
    var hours = Math.floor(whole / 3600);
    var minutes = Math.floor((whole % 3600) / 60);
    var seconds = whole % 60;
    if (hours) return hours + "h " + String(minutes).padStart(2, "0") + "m";
    return minutes + "m " + String(seconds).padStart(2, "0") + "s";
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chartSource);
    if (!source || typeof Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var previous = Chart.getChart(canvas);
    if (previous) previous.destroy();
    var colors = data.colors;
    new Chart(canvas, {
      data: {
        labels: data.labels.map(function (day) { return day.slice(5); }),
        datasets: [
          {
            type: "bar",
            label: "Succeeded",
            data: data.succeeded,
            backgroundColor: badgeColor(colors.succeeded, 0.7),
            stack: "instances",
            yAxisID: "count",
            order: 2
          },
          {
            type: "bar",
            label: "Failed",
            data: data.failed,
            backgroundColor: badgeColor(colors.failed, 0.8),
            stack: "instances",
            yAxisID: "count",
            order: 2
          },
          {
            type: "line",
            label: "Average duration",
            data: data.avg_duration_seconds,
            borderColor: badgeColor(colors.duration, 0.9),
            backgroundColor: badgeColor(colors.duration, 0.9),
            borderWidth: 2,
            pointRadius: 3,
            spanGaps: true,
            tension: 0.2,
            yAxisID: "duration",
            order: 1
          },
          {
            // Failed attempts, retried ones included: above the failed bar when
            // retries failed before an instance succeeded or failed for good.
            type: "line",
            label: "Failed attempts",
            data: data.failed_attempts || [],
            borderColor: badgeColor(colors.failed, 0.9),
            backgroundColor: badgeColor(colors.failed, 0.9),
            borderDash: [4, 3],
            borderWidth: 1.5,
            pointRadius: 2,
            yAxisID: "count",
            order: 0
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
              title: function (items) { return "biz date " + data.labels[items[0].dataIndex]; },
              label: function (item) {
                if (item.dataset.yAxisID === "duration") {
                  return " Average duration: " + formatSeconds(item.raw);
                }
                return " " + item.dataset.label + ": " + item.raw;
              }
            }
          }
        },
        scales: {
          x: { stacked: true, grid: { display: false } },
          count: {
            type: "linear",
            position: "left",
            stacked: true,
            beginAtZero: true,
            grace: "10%",
            ticks: { precision: 0 },
            title: { display: true, text: "instances" }
          },
          duration: {
            type: "linear",
            position: "right",
            beginAtZero: true,
            grid: { drawOnChartArea: false },
            ticks: { callback: function (value) { return formatSeconds(value); } },
            title: { display: true, text: "average duration" }
          }
        }
      }
    });
    canvas.dataset.chartReady = "true";
  }

  // Draws every chart not drawn yet: a period switch swaps in a new canvas.
  function drawAll() {
    document.querySelectorAll("canvas[data-chart-source]").forEach(function (canvas) {
      if (canvas.dataset.chartReady !== "true") draw(canvas);
    });
  }

  document.addEventListener("DOMContentLoaded", drawAll);
  document.addEventListener("htmx:afterSettle", drawAll);
})();
