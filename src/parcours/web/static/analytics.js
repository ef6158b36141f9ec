// Draws the dashboard's charts from the JSON the page carries; each chart also has its table.
(function () {
  "use strict";
  var holder = document.getElementById("kpi-charts");
  if (!holder || !window.Chart) return;
  var specs = JSON.parse(holder.textContent);
  var css = getComputedStyle(document.documentElement);
  var channel = function (c) { return css.getPropertyValue("--ch-" + c).trim() || "#667085"; };
  var palette = ["#1d55c4", "#0b6e65", "#b0245d", "#9a4a06", "#6b34c9", "#17743b"];
  var lang = document.documentElement.lang || "fr";
  Chart.defaults.font.family = css.getPropertyValue("--font").trim() || "system-ui, sans-serif";
  Chart.defaults.color = css.getPropertyValue("--text-2").trim() || "#475467";
  Chart.defaults.animation = false;
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var spec = specs[canvas.dataset.chart];
    if (!spec) return;
    var datasets = spec.datasets.map(function (d, i) {
      var color = d.channel ? channel(d.channel) : palette[i % palette.length];
      var ds = { label: d.label, data: d.data, borderColor: color, backgroundColor: color };
      if (d.channels) ds.backgroundColor = d.channels.map(channel);
      if (spec.type === "line") { ds.tension = 0.25; ds.pointRadius = 3; ds.spanGaps = true; }
      return ds;
    });
    var fmt = new Intl.NumberFormat(lang, { maximumFractionDigits: 1 });
    var options = {
      responsive: true, maintainAspectRatio: false,
      indexAxis: spec.horizontal ? "y" : "x",
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 12 } },
        tooltip: { callbacks: { label: function (ctx) {
          var v = ctx.parsed && typeof ctx.parsed === "object" ? (spec.horizontal ? ctx.parsed.x : ctx.parsed.y) : ctx.parsed;
          return (ctx.dataset.label ? ctx.dataset.label + ": " : "") + fmt.format(v) + (spec.percent ? " %" : "");
        } } }
      }
    };
    if (spec.type !== "doughnut") {
      var value = { beginAtZero: true, stacked: !!spec.stacked, ticks: { callback: function (v) { return fmt.format(v) + (spec.percent ? " %" : ""); } } };
      var cat = { stacked: !!spec.stacked, ticks: { autoSkip: true, maxRotation: 0 } };
      options.scales = spec.horizontal ? { x: value, y: cat } : { x: cat, y: value };
      if (spec.percent) (spec.horizontal ? options.scales.x : options.scales.y).suggestedMax = 100;
    }
    new Chart(canvas, { type: spec.type, data: { labels: spec.labels, datasets: datasets }, options: options });
  });
})();
