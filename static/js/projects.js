// The datasource form shows the inputs of the chosen kind only (PostgreSQL: connection
// string and password; SQLite: the file). Without JavaScript every input stays shown.
(function () {
  function sync(form) {
    var select = form.querySelector("[data-kind-select]");
    if (!select) return;
    form.querySelectorAll("[data-kind]").forEach(function (field) {
      field.hidden = field.getAttribute("data-kind") !== select.value;
    });
  }
  function init() {
    document.querySelectorAll("form[data-kind-form]").forEach(function (form) {
      sync(form);
      var select = form.querySelector("[data-kind-select]");
      if (select) select.addEventListener("change", function () { sync(form); });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
