// Draw the two charts from the JSON the page embeds (Chart.js, served from vendor/).
// Without JavaScript the same numbers are in the page as tables.
(function () {
  "use strict";
  var el = document.getElementById("chart-data");
  if (!el || typeof Chart === "undefined") { return; }
  var data = JSON.parse(el.textContent);
  var palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var common = {responsive: true, maintainAspectRatio: false, animation: false,
                interaction: {mode: "index", intersect: false},
                scales: {y: {beginAtZero: true, ticks: {precision: 0}}}};
  var sets = [], i = 0;
  var series = data.series || {scans: "{site} scans", denials: "{site} denials"};
  Object.keys(data.sites).forEach(function (site) {
    var c = palette[i++ % palette.length];
    sets.push({label: series.scans.replace("{site}", site), data: data.sites[site].scans, borderColor: c,
               backgroundColor: c, pointRadius: 0});
    sets.push({label: series.denials.replace("{site}", site), data: data.sites[site].denials, borderColor: c,
               backgroundColor: c, borderDash: [5, 4], pointRadius: 0});
  });
  new Chart(document.getElementById("per-site"),
            {type: "line", data: {labels: data.labels, datasets: sets}, options: common});
  var bars = Object.keys(data.reasons).map(function (code, j) {
    var c = palette[j % palette.length];
    return {label: data.words[code] || code, data: data.reasons[code], backgroundColor: c};
  });
  var stacked = JSON.parse(JSON.stringify(common));
  stacked.scales.x = {stacked: true};
  stacked.scales.y.stacked = true;
  new Chart(document.getElementById("reasons"),
            {type: "bar", data: {labels: data.labels, datasets: bars}, options: stacked});
}());
