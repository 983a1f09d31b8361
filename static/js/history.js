/* A node's duration trend (Chart.js): each run's duration coloured by its state, with
 * the median of the finished runs and the node's timeout as lines. The numbers come
 * embedded in the page (json_script "history-data"). */
(function () {
  "use strict";

  var palette = {
    gray: "#c5ccd6", light: "#e6e9ee", cyan: "#3bb3c8", blue: "#3f6fe0", green: "#2f9e55",
    red: "#d23a2e", orange: "#e08a2c", yellow: "#e2b93b", purple: "#8a63d2"
  };

  function flat(value, count) {
    var out = [];
    for (var i = 0; i < count; i++) out.push(value);
    return out;
  }

  function draw() {
    var source = document.getElementById("history-data");
    var canvas = document.getElementById("history-chart");
    if (!source || !canvas || typeof Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var count = data.labels.length;
    var datasets = [
      {
        type: "bar",
        label: "Duration (s)",
        data: data.durations,
        backgroundColor: data.colors.map(function (c) { return palette[c] || palette.gray; })
      }
    ];
    if (data.median !== null) {
      datasets.push({ type: "line", label: "Median", data: flat(data.median, count),
        borderColor: "#374151", borderDash: [4, 3], pointRadius: 0, borderWidth: 1.5 });
    }
    if (data.timeout !== null) {
      datasets.push({ type: "line", label: "Timeout", data: flat(data.timeout, count),
        borderColor: palette.red, pointRadius: 0, borderWidth: 1.5 });
    }
    new Chart(canvas, {
      data: { labels: data.labels, datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: { y: { beginAtZero: true, title: { display: true, text: "seconds" } },
                  x: { ticks: { maxRotation: 60, autoSkip: true } } }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
