// metrix-import ui: a little plain JavaScript on a server-rendered page.
// Drop a file to open it; any change in the column table applies at once;
// progress of the whole-file check and of the import arrives as server-sent events.
"use strict";

function byId(id) { return document.getElementById(id); }

// Once the page is being left (a form was sent), progress events no longer redraw
// it: a reload then would cut the form's own request short.
let leaving = false, events = null;
function leave() {
  leaving = true;
  if (events) events.close();
}

function setupDrop() {
  const drop = byId("drop"), input = byId("file"), form = byId("open-form");
  if (!drop || !input || !form) return;
  input.addEventListener("change", () => { if (input.files.length) { leave(); form.submit(); } });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      leave();
      form.submit();
    }
  });
}

function setupMapping() {
  const form = byId("mapping-form");
  if (!form) return;
  form.addEventListener("change", () => { leave(); form.submit(); });
}

function number(n) { return Number(n || 0).toLocaleString("en-US"); }

function duration(s) {
  if (s === null || s === undefined) return "";
  if (s < 90) return Math.round(s) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

// The state each part had when the server drew the page: when the events say it has
// changed since (a check that finished, an import that ended), the page is drawn again.
const shown = {};

function onStatus(data) {
  if (leaving) return;
  const v = data.validation;
  if (v) {
    const bar = byId("validation-progress"), text = byId("validation-text");
    if (bar && v.state === "running") {
      bar.value = v.fraction || 0;
      text.textContent = "Checking every row of the file… " + number(v.rows) + " rows so far";
    }
    if (shown.validation !== undefined && v.state !== shown.validation) location.reload();
  }
  const r = data.run;
  if (r) {
    const bar = byId("run-progress"), text = byId("run-text");
    if (bar && text) {
      bar.value = r.total ? Math.min(1, r.done / r.total) : (r.state === "done" ? 1 : 0);
      let line = number(r.done) + (r.total ? " of " + number(r.total) : "") + " rows · " +
        number(r.sent) + " sent · " + number(r.failed) + " failed · " +
        number(r.retries) + " retries · " + r.rate + " users/s";
      if (r.seconds_left !== null) line += " · " + duration(r.seconds_left) + " left";
      if (r.stopping && r.state === "running") line += " · stopping…";
      if (r.state === "done") line += " · finished";
      text.textContent = line;
    }
    if (shown.run !== undefined && r.state !== shown.run) location.reload();
  }
}

function setupEvents() {
  const validation = byId("validation"), run = byId("run-live");
  if (!validation && !run) return;
  if (validation && validation.dataset.state) shown.validation = validation.dataset.state;
  if (run && run.dataset.state) shown.run = run.dataset.state;
  events = new EventSource("/events");
  events.onmessage = (e) => onStatus(JSON.parse(e.data));
}

document.addEventListener("DOMContentLoaded", () => {
  document.addEventListener("submit", leave);
  window.addEventListener("beforeunload", leave);
  setupDrop();
  setupMapping();
  setupEvents();
});
