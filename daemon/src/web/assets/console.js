// Ferry's pages' only script (no inline script anywhere: the CSP forbids
// it). Two things need it: the configuration token's Copy button, and the
// jobs page's live progress from /admin/jobs/events. Everything else works
// without it.
"use strict";

function copyToken(button) {
  const target = document.getElementById(button.dataset.copy);
  if (!target) return;
  const text = target.textContent;
  const done = () => { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(target, done));
  } else {
    fallbackCopy(target, done);
  }
}

function fallbackCopy(target, done) {
  const range = document.createRange();
  range.selectNodeContents(target);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  if (document.execCommand("copy")) done();
}

function cell(row, className) {
  let td = row.querySelector("td." + className);
  return td;
}

function showJob(table, job) {
  let row = document.getElementById("job-" + job.job_id);
  if (!row) {
    row = document.createElement("tr");
    row.id = "job-" + job.job_id;
    row.dataset.job = job.job_id;
    for (const name of ["topic", "host", "state", "progress", "message", "actions"]) {
      const td = document.createElement("td");
      td.className = name;
      row.appendChild(td);
    }
    row.querySelector("td.topic").textContent = job.topic;
    row.querySelector("td.host").textContent = job.host_email;
    row.querySelector("td.progress").appendChild(document.createElement("progress"));
    table.tBodies[0].prepend(row);
  }
  const state = cell(row, "state");
  if (state) state.textContent = job.skip_reason ? job.state + " (" + job.skip_reason + ")" : job.state;
  const message = cell(row, "message");
  if (message && !job.progress_only) message.textContent = job.message;
  const bar = row.querySelector("progress");
  if (bar) {
    bar.max = Math.max(job.total_bytes, 1);
    bar.value = job.state === "completed" ? bar.max : job.bytes_transferred;
    bar.textContent = job.bytes_transferred + " / " + job.total_bytes;
  }
  row.dataset.state = job.state;
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", () => copyToken(button));
  }
  const table = document.getElementById("jobs");
  if (table && table.dataset.events && window.EventSource) {
    const source = new EventSource(table.dataset.events);
    source.onmessage = (event) => showJob(table, JSON.parse(event.data));
    table.dataset.live = "on";
  }
});
