// The resource upload form's drop zone: a file dropped on it becomes the form's file (one
// at a time), and the hint says which file will be uploaded. Without JavaScript the file
// input works as it is.
(function () {
  function describe(file) {
    var size = file.size < 1024 ? file.size + " bytes"
      : file.size < 1048576 ? (file.size / 1024).toFixed(1) + " KB"
      : (file.size / 1048576).toFixed(1) + " MB";
    return file.name + " (" + size + ")";
  }

  function init(zone) {
    var input = zone.querySelector("[data-drop-input]");
    var hint = zone.querySelector("[data-drop-hint]");
    if (!input || !hint) return;
    var idle = hint.textContent;

    function show() {
      var file = input.files && input.files[0];
      hint.textContent = file ? "Ready to upload: " + describe(file) : idle;
      zone.classList.toggle("has-file", !!file);
    }

    function take(files) {
      if (!files || !files.length) return;
      var chosen = new DataTransfer();
      chosen.items.add(files[0]);
      input.files = chosen.files;
      show();
      if (files.length > 1) hint.textContent += " (one file at a time: the others were left out)";
    }

    ["dragenter", "dragover"].forEach(function (kind) {
      zone.addEventListener(kind, function (event) {
        event.preventDefault();
        if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
        zone.classList.add("dragging");
      });
    });
    zone.addEventListener("dragleave", function (event) {
      if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("dragging");
      take(event.dataTransfer && event.dataTransfer.files);
    });
    input.addEventListener("change", show);
  }

  function start() {
    var zones = document.querySelectorAll("[data-drop-zone]");
    zones.forEach(init);
    if (zones.length) {
      // A file dropped just beside the zone must not make the browser leave the page.
      ["dragover", "drop"].forEach(function (kind) {
        window.addEventListener(kind, function (event) {
          if (!event.target.closest || !event.target.closest("[data-drop-zone]")) {
            event.preventDefault();
          }
        });
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
