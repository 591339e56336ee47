(function () {
  // The static panel's controller: fixed, dependency-free ES5 that runs in any browser.
  // bnbook/widgets/static.py fills in the panel's element id and the error colour; the
  // frames and controls live in the sibling JSON block, id = the panel's id + "-data".
  var uid = "${uid}";
  var root = document.getElementById(uid);
  if (!root) { return; }
  var data = JSON.parse(document.getElementById(uid + "-data").textContent);
  var img = root.querySelector("img.bnbook-frame");
  var status = root.querySelector(".bnbook-status");
  var inputs = [], outputs = [];
  for (var k = 0; k < data.controls.length; k++) {
    inputs.push(root.querySelector('[data-bnbook-control="' + k + '"]'));
    outputs.push(root.querySelector('[data-bnbook-output="' + k + '"]'));
  }
  function read(k) {
    var el = inputs[k];
    return el.type === "checkbox" ? (el.checked ? 1 : 0) : parseInt(el.value, 10);
  }
  function write(k, i) {
    var el = inputs[k];
    if (el.type === "checkbox") { el.checked = (i === 1); } else { el.value = String(i); }
  }
  function render(changed) {
    var idx = [], k;
    for (k = 0; k < inputs.length; k++) { idx.push(read(k)); }
    if (!Object.prototype.hasOwnProperty.call(data.frames, idx.join(","))) {
      // one-at-a-time mode: the other controls return to their defaults
      for (k = 0; k < inputs.length; k++) {
        if (k !== changed) { idx[k] = data.controls[k]["default"]; write(k, idx[k]); }
      }
    }
    var key = idx.join(",");
    var frame = data.frames[key];
    if (!frame) { return; }
    for (k = 0; k < inputs.length; k++) {
      var label = data.controls[k].labels[idx[k]];
      if (outputs[k]) { outputs[k].textContent = label; }
      if (inputs[k].type === "range") { inputs[k].setAttribute("aria-valuetext", label); }
    }
    if (frame[0] >= 0) { img.src = "data:image/png;base64," + data.images[frame[0]]; }
    status.textContent = frame[1];
    status.style.color = frame[2] ? "${error_color}" : "";
    root.setAttribute("data-bnbook-key", key);
  }
  function listen(k) {
    var handler = function () { render(k); };
    inputs[k].addEventListener("input", handler);
    inputs[k].addEventListener("change", handler);
  }
  for (var j = 0; j < inputs.length; j++) { listen(j); }
  var reset = root.querySelector(".bnbook-reset");
  if (reset) {
    reset.addEventListener("click", function () {
      for (var k = 0; k < inputs.length; k++) { write(k, data.controls[k]["default"]); }
      render(-1);
    });
  }
  render(-1);
})();
