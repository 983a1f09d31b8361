/* The baseline form: the committed time's format and hint follow the cycle (HH:MM for a
   daily baseline, MM for an hourly one), and the box above the key nodes hides the nodes
   whose name does not contain what is typed (checked ones stay). Listeners sit on the
   document, so a form swapped in by htmx works without binding again. */
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!select.matches || !select.matches("select[data-committed-input]")) return;
    var option = select.options[select.selectedIndex];
    var input = document.getElementById(select.dataset.committedInput);
    if (!option || !input) return;
    input.placeholder = option.dataset.format;
    var field = input.closest(".form-field");
    field.querySelector("[data-committed-format]").textContent = option.dataset.format;
    field.querySelector("[data-committed-hint]").textContent = option.dataset.hint;
  });

  document.addEventListener("input", function (event) {
    var search = event.target;
    if (!search.matches || !search.matches("input[data-filters]")) return;
    var list = document.getElementById(search.dataset.filters);
    if (!list) return;
    var text = search.value.trim().toLowerCase();
    list.querySelectorAll("label[data-node]").forEach(function (label) {
      var box = label.querySelector("input");
      label.hidden = Boolean(text) && label.textContent.toLowerCase().indexOf(text) < 0 && !box.checked;
    });
  });
})();
