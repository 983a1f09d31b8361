// The top bar's menus (<details>): one open at a time, closed by a click elsewhere or Escape.
(function () {
  "use strict";
  function menus() {
    return document.querySelectorAll("details.navmenu, details.usermenu");
  }
  document.addEventListener("click", function (event) {
    menus().forEach(function (menu) {
      if (menu.open && !menu.contains(event.target)) menu.open = false;
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    menus().forEach(function (menu) {
      menu.open = false;
    });
  });
  document.addEventListener(
    "toggle",
    function (event) {
      var opened = event.target;
      if (!opened.open || !opened.matches("details.navmenu, details.usermenu")) return;
      menus().forEach(function (menu) {
        if (menu !== opened) menu.open = false;
      });
    },
    true
  );
})();
