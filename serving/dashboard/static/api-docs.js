// The API docs page (/): Swagger UI over the service's own OpenAPI document. No validator badge (it would ask
// validator.swagger.io), no URL box to load another document.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/docs.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
