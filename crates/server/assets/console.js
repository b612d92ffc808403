// hookwarden console: show every <time> in the browser's zone (the UTC value stays on hover).
document.querySelectorAll("time[datetime]").forEach(function (t) {
  var d = new Date(t.getAttribute("datetime"));
  if (!isNaN(d)) { t.textContent = d.toLocaleString(); }
});
