// The API reference at /docs: the vendored Swagger UI (web/vendor) drawing the OpenAPI
// document this server serves. No inline script, nothing from another host, so the page runs
// under the same content security policy as the rest of the UI.
(function () {
  "use strict";
  var root = document.getElementById("api-reference");
  SwaggerUIBundle({
    url: root.dataset.spec,
    domNode: root,
    deepLinking: true,
    // Shows each operation's x-problem-codes: the problem codes it can answer, by status.
    showExtensions: true,
    // The default posts the document to validator.swagger.io for a badge.
    validatorUrl: null,
    // "Try it out" sends requests to this server whatever the document's servers say
    // (http://localhost:8080): the policy allows no other origin anyway.
    requestInterceptor: function (req) {
      var u = new URL(req.url, window.location.href);
      if (u.origin !== window.location.origin) {
        req.url = window.location.origin + u.pathname + u.search;
      }
      return req;
    },
    onComplete: function () {
      var loading = document.getElementById("docs-loading");
      if (loading) loading.remove();
      root.dataset.ready = "docs";
    },
  });
})();
