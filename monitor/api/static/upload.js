// Upload progress for the upload form. Without JavaScript the form posts as usual.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) { return; }
  var bar = document.getElementById("upload-progress");
  var status = document.getElementById("upload-status");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    bar.hidden = false;
    button.disabled = true;
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        var pct = Math.round((e.loaded / e.total) * 100);
        bar.value = pct;
        status.textContent = pct < 100 ? "Uploading… " + pct + "%" : "Registering…";
      }
    });
    xhr.addEventListener("load", function () {
      if (xhr.status >= 200 && xhr.status < 400 && xhr.responseURL) {
        window.location.assign(xhr.responseURL);
      } else {
        document.open(); document.write(xhr.responseText); document.close();
      }
    });
    xhr.addEventListener("error", function () {
      status.textContent = "The upload failed: check the connection and try again.";
      button.disabled = false;
    });
    xhr.send(new FormData(form));
  });
})();
