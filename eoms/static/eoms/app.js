// Behaviour shared by every page; no inline scripts, so a strict Content-Security-Policy can hold.
document.addEventListener("change", (event) => {
  const el = event.target;
  if (el instanceof HTMLSelectElement && el.hasAttribute("data-autosubmit")) {
    el.form.submit();
  }
});
document.addEventListener("click", (event) => {
  const el = event.target.closest("[data-confirm]");
  if (el && !window.confirm(el.getAttribute("data-confirm"))) {
    event.preventDefault();
  }
});

// ---- orders: dashboard chart (begin) ----
// An element with data-echarts-source="<id>" gets a bar chart of the JSON in the element with that id
// (written by Django's json_script): {labels, counts, states, url, seriesName}. A click on a bar opens
// the order list filtered by that bar's state.
document.addEventListener("DOMContentLoaded", () => {
  if (!window.echarts) return;
  document.querySelectorAll("[data-echarts-source]").forEach((el) => {
    const source = document.getElementById(el.getAttribute("data-echarts-source"));
    if (!source) return;
    const data = JSON.parse(source.textContent);
    const chart = window.echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      grid: { left: 8, right: 24, top: 8, bottom: 8, containLabel: true },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", data: data.labels, inverse: true },
      series: [{ name: data.seriesName, type: "bar", data: data.counts, itemStyle: { color: "#066fd1" }, label: { show: true, position: "right" } }],
    });
    chart.on("click", (params) => {
      const state = data.states[params.dataIndex];
      if (state) window.location.href = data.url + "?state=" + encodeURIComponent(state);
    });
    window.addEventListener("resize", () => chart.resize());
  });
});
// ---- orders: dashboard chart (end) ----
