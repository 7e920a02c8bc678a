// The leaderboard site's only script: sortable tables, row filters and the column picker.
// It reads the page's own markup and never builds HTML from strings, so no text from a result can become markup.
"use strict";

function sortBy(table, column, th) {
  const body = table.tBodies[0];
  const ascending = th.getAttribute("aria-sort") !== "ascending";
  for (const other of table.tHead.rows[0].cells) other.removeAttribute("aria-sort");
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const key = (row) => {
    const cell = row.cells[column];
    const text = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent;
    const number = parseFloat(text);
    return text === "" ? null : isNaN(number) ? text.toLowerCase() : number;
  };
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === y) return 0;
    if (x === null) return 1;  // empty cells last, either way
    if (y === null) return -1;
    return (x < y ? -1 : 1) * (ascending ? 1 : -1);
  });
  for (const row of rows) body.appendChild(row);
}

function applyFilters(form) {
  const value = (name) => form.elements[name].value;
  const low = parseFloat(value("params_min")), high = parseFloat(value("params_max"));
  for (const row of document.querySelectorAll("tr.entry")) {
    const params = parseFloat(row.dataset.params);
    row.hidden = !(
      (!value("modalities") || row.dataset.modalities === value("modalities")) &&
      (!value("license") || row.dataset.license === value("license")) &&
      (!value("training") || row.dataset.training === value("training")) &&
      (isNaN(low) || params >= low) && (isNaN(high) || params <= high)
    );
  }
}

function showColumn(box) {
  for (const cell of document.querySelectorAll("." + box.value)) cell.hidden = !box.checked;
}

document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.sortable")) {
    Array.from(table.tHead.rows[0].cells).forEach((th, column) => {
      th.classList.add("sort");
      th.addEventListener("click", () => sortBy(table, column, th));
    });
  }
  const form = document.getElementById("filters");
  if (form) {
    for (const kind of ["input", "change"]) form.addEventListener(kind, () => applyFilters(form));
    form.addEventListener("submit", (event) => event.preventDefault());
  }
  for (const box of document.querySelectorAll("#columns input[type=checkbox]")) {
    box.addEventListener("change", () => showColumn(box));
  }
});
