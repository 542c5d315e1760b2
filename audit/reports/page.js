// The page's behaviour: summary charts on load, a case's charts when its section opens,
// sorting and filtering of the cases table. vegaEmbed comes from the bundle inlined before.
const embedOptions = { actions: false, renderer: "svg", mode: "vega-lite" };

function draw(target, spec) {
  return window.vegaEmbed(target, spec, embedOptions).catch((error) => {
    target.textContent = `chart failed: ${error}`;
    console.error(error);
  });
}

for (const chart of JSON.parse(document.getElementById("summary-charts").textContent)) {
  draw(document.getElementById(chart.id), chart.spec);
}

function drawCase(section) {
  if (section.dataset.drawn) return;
  section.dataset.drawn = "1";
  const box = section.querySelector(".case-charts");
  for (const chart of JSON.parse(section.querySelector("script.specs").textContent)) {
    const target = document.createElement("div");
    target.className = `chart chart-${chart.kind}`;
    box.appendChild(target);
    draw(target, chart.spec);
  }
}

for (const section of document.querySelectorAll("details.case")) {
  section.addEventListener("toggle", () => { if (section.open) drawCase(section); });
}

function openFromHash() {
  const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target && target.tagName === "DETAILS") {
    target.open = true;
    target.scrollIntoView();
  }
}
window.addEventListener("hashchange", openFromHash);
openFromHash();

// ---- the cases table
const table = document.getElementById("cases");
const body = table.tBodies[0];
const filters = {
  verdict: document.getElementById("filter-verdict"),
  fault: document.getElementById("filter-fault"),
  name: document.getElementById("filter-name"),
};

function applyFilters() {
  const verdict = filters.verdict.value, fault = filters.fault.value;
  const name = filters.name.value.trim().toLowerCase();
  let shown = 0;
  for (const row of body.rows) {
    const keep = (!verdict || row.dataset.verdict === verdict)
      && (!fault || row.dataset.fault === fault)
      && (!name || row.dataset.name.includes(name));
    row.hidden = !keep;
    shown += keep ? 1 : 0;
  }
  document.getElementById("shown").textContent = `showing ${shown} of ${body.rows.length}`;
}
for (const control of Object.values(filters)) control.addEventListener("input", applyFilters);
applyFilters();

function sortKey(cell, numeric) {
  const raw = cell.dataset.sort ?? cell.textContent.trim();
  if (!numeric) return raw.toLowerCase();
  const value = parseFloat(raw);
  return Number.isNaN(value) ? -Infinity : value;
}

table.tHead.querySelectorAll("th").forEach((header, column) => {
  header.addEventListener("click", () => {
    const numeric = header.dataset.type === "number";
    const ascending = header.getAttribute("aria-sort") !== "ascending";
    table.tHead.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = sortKey(a.cells[column], numeric), y = sortKey(b.cells[column], numeric);
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    });
    body.append(...rows);
  });
});
