// Stratus dashboard: small progressive enhancements. Every page works without them except uploads.
"use strict";

function csrfToken() { return document.body.dataset.csrf || ""; }

// A select marked data-autosubmit submits its form when changed (the project switcher).
function autosubmit() {
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
}

// Forms marked data-confirm ask before they are sent (deletes).
function confirmations() {
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
}

// Buttons marked data-dialog open the <dialog> with that id.
function dialogs() {
  document.querySelectorAll("[data-dialog]").forEach(function (button) {
    var dialog = document.getElementById(button.dataset.dialog);
    if (!dialog) { return; }
    button.addEventListener("click", function (event) { event.preventDefault(); dialog.showModal(); });
  });
  document.querySelectorAll("dialog [data-close]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      event.preventDefault(); button.closest("dialog").close();
    });
  });
}

// An element with data-poll="URL" has its content replaced by URL's HTML every data-interval ms,
// except while the user is filling in a field inside it (a refresh would throw their input away).
function polling() {
  document.querySelectorAll("[data-poll]").forEach(function (target) {
    var interval = parseInt(target.dataset.interval || "3000", 10);
    var edited = false;
    target.addEventListener("input", function () { edited = true; });
    target.addEventListener("change", function () { edited = true; });
    function refresh() {
      var active = document.activeElement;
      var typing = active && target.contains(active) && active.matches("input, select, textarea");
      if (edited || typing) { window.setTimeout(refresh, interval); return; }
      fetch(target.dataset.poll, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.status === 401) { window.location = "/auth/login"; return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) { target.innerHTML = html; confirmations(); }
          window.setTimeout(refresh, interval);
        })
        .catch(function () { window.setTimeout(refresh, interval * 2); });
    }
    window.setTimeout(refresh, interval);
  });
}

// Forms marked data-upload="URL" send their file as the raw body of a PUT to URL (with the other
// fields as the query string), showing progress; the server streams it on without holding it.
function uploads() {
  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var fileInput = form.querySelector("input[type=file]");
      var file = fileInput && fileInput.files[0];
      var status = form.querySelector("[data-upload-status]");
      var bar = form.querySelector("progress");
      if (!file) { status.textContent = "Choose a file first."; return; }
      var params = new URLSearchParams();
      new FormData(form).forEach(function (value, key) {
        if (typeof value === "string" && key !== "csrf_token") { params.append(key, value); }
      });
      if (!params.get("name")) { params.set("name", file.name); }
      var xhr = new XMLHttpRequest();
      xhr.open("PUT", form.dataset.upload + "?" + params.toString());
      xhr.setRequestHeader("X-CSRF-Token", csrfToken());
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) { bar.value = Math.round(100 * e.loaded / e.total); }
      });
      xhr.addEventListener("load", function () {
        var answer = {};
        try { answer = JSON.parse(xhr.responseText); } catch (err) { answer = {}; }
        if (xhr.status >= 200 && xhr.status < 300) {
          bar.value = 100;
          status.textContent = "Uploaded.";
          window.location = answer.next || window.location.href;
        } else {
          status.textContent = "Upload failed: " + (answer.error || ("HTTP " + xhr.status));
        }
      });
      xhr.addEventListener("error", function () { status.textContent = "Upload failed: connection lost."; });
      status.textContent = "Uploading…";
      xhr.send(file);
    });
  });
}

document.addEventListener("DOMContentLoaded", function () {
  autosubmit(); confirmations(); dialogs(); polling(); uploads();
});
