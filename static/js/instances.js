/* Instance pages: ask before operations that carry data-confirm. (The list's batch
   selection is static/js/batch.js.) */
(function () {
  "use strict";
  if (window.opscenterInstances) return;
  window.opscenterInstances = true;

  // An operation form with data-confirm asks first; "Cancel" sends nothing.
  document.addEventListener(
    "submit",
    function (event) {
      const form = event.target;
      if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );
})();
