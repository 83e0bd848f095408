// heapprof report: selecting a snapshot (a click on the chart, or the arrow
// keys) redraws its top table, flamegraph and memory classes from the data
// embedded in the page. No library, no network.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("heapprof-data").textContent);
  var names = data.names;
  var hits = document.querySelectorAll("#chart .hit");
  var cursor = document.getElementById("cursor");
  var current = -1;

  function element(tag, text, className) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (className) e.className = className;
    return e;
  }

  // Bytes as pprof scales them (1024-based, "kB", "MB", ...); other units
  // as plain numbers.
  function amount(value) {
    if (data.unit !== "bytes") return String(value) + " " + data.unit;
    var units = ["B", "kB", "MB", "GB", "TB", "PB"];
    var i = 0;
    while (Math.abs(value) >= 1024 && i < units.length - 1) { value /= 1024; i++; }
    return (i === 0 ? String(value) : value.toFixed(2).replace(/\.00$/, "")) + units[i];
  }

  // A warm shade of its own for each name, the same in every snapshot.
  function shade(name) {
    var hash = 0;
    for (var i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) | 0;
    return "hsl(" + (15 + Math.abs(hash) % 35) + ", 85%, " + (62 + Math.abs(hash >> 8) % 14) + "%)";
  }

  function table(snapshot) {
    document.getElementById("selected-notes").textContent = snapshot.notes.join("\n");
    var body = document.querySelector("#selected-top tbody");
    body.replaceChildren();
    snapshot.rows.forEach(function (row) {
      var tr = element("tr");
      for (var c = 1; c <= 5; c++) tr.appendChild(element("td", row[c], "num"));
      tr.appendChild(element("td", names[row[0]], "name"));
      body.appendChild(tr);
    });
  }

  // An icicle graph: the root ("all") on top, callees below, each frame as
  // wide as its share of the snapshot's total.
  function flame(snapshot) {
    var box = document.getElementById("selected-flame");
    box.replaceChildren();
    var tree = snapshot.tree, total = snapshot.total, rowHeight = 18;
    if (total <= 0) { box.textContent = "Nothing in use."; box.style.height = ""; return; }
    var frames = tree.length / 3, depth = [], start = [], next = [], deepest = 0;
    function frame(name, value, x, level) {
      var width = value / total * 100;
      var div = element("div", width > 4 ? name : "", "frame");
      div.style.left = (x / total * 100) + "%";
      div.style.width = width + "%";
      div.style.top = (level * rowHeight) + "px";
      div.title = name + " (" + amount(value) + ", " + (value / total * 100).toFixed(2) + "%)";
      div.style.background = shade(name);
      box.appendChild(div);
    }
    frame("all", total, 0, 0);
    var rootNext = 0;
    for (var k = 0; k < frames; k++) {
      var parent = tree[3 * k], name = names[tree[3 * k + 1]], value = tree[3 * k + 2];
      depth[k] = parent < 0 ? 1 : depth[parent] + 1;
      if (parent < 0) { start[k] = rootNext; rootNext += value; }
      else { start[k] = next[parent]; next[parent] += value; }
      next[k] = start[k];
      deepest = Math.max(deepest, depth[k]);
      frame(name, value, start[k], depth[k]);
    }
    box.style.height = ((deepest + 1) * rowHeight) + "px";
  }

  function classes(snapshot) {
    var box = document.getElementById("classes");
    var body = document.querySelector("#selected-classes tbody");
    body.replaceChildren();
    box.hidden = snapshot.classes.length === 0;
    snapshot.classes.forEach(function (c) {
      var tr = element("tr");
      tr.appendChild(element("td", names[c[0]], "name"));
      tr.appendChild(element("td", c[1], "num"));
      body.appendChild(tr);
    });
  }

  function select(index) {
    if (index < 0 || index >= data.snapshots.length || index === current) return;
    current = index;
    var snapshot = data.snapshots[index];
    var label = snapshot.file + (snapshot.time ? " at " + snapshot.time : "") +
      ", " + snapshot.inuse + " in use";
    document.getElementById("selected-name").textContent = label;
    document.getElementById("selected").dataset.index = index;
    table(snapshot);
    flame(snapshot);
    classes(snapshot);
    hits.forEach(function (hit) {
      hit.classList.toggle("selected", Number(hit.dataset.index) === index);
    });
    if (cursor && hits[index]) {
      cursor.setAttribute("x1", hits[index].dataset.x);
      cursor.setAttribute("x2", hits[index].dataset.x);
    }
  }

  hits.forEach(function (hit) {
    hit.addEventListener("click", function () { select(Number(hit.dataset.index)); });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "ArrowLeft") select(current - 1);
    if (event.key === "ArrowRight") select(current + 1);
  });
  select(data.initial);
})();
