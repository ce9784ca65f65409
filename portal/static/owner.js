// Copy buttons: <button type="button" data-copy="#field-id"> copies that field's value.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.querySelector(button.dataset.copy);
  if (!field) return;
  const done = () => {
    const label = button.textContent;
    button.textContent = "✓";
    setTimeout(() => { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value ?? field.textContent).then(done);
  } else {  // plain http: select the text and use the legacy command
    field.select();
    document.execCommand("copy");
    done();
  }
});
