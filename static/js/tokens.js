/* The API tokens page: "Copy" puts the new key on the clipboard (or selects it where the
   clipboard is not available, e.g. over plain HTTP). */
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const field = document.querySelector(button.dataset.copy);
    if (!field) return;
    field.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(function () {
        button.textContent = "Copied";
      });
    } else {
      button.textContent = "Selected: press Ctrl+C";
    }
  });
})();
