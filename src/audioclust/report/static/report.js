(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("map-data").textContent);
  var svg = document.getElementById("soundmap");
  var tip = document.getElementById("tip");
  var info = document.getElementById("info");
  var player = document.getElementById("player");
  var npText = document.getElementById("np-text");
  var legend = document.getElementById("legend");
  var hoverPlay = document.getElementById("hoverplay");
  var W = 1000, H = 640, PAD = 24, R = 6;
  var n = data.x.length, points = [], current = -1, mode = "cluster";
  var SHAPES = ["circle", "square", "triangle", "diamond"];

  function shapePath(shape, x, y, r) {
    if (shape === "square") { var s = r * 0.85; return "M" + (x - s) + " " + (y - s) + "h" + 2 * s + "v" + 2 * s + "h" + (-2 * s) + "Z"; }
    if (shape === "triangle") { return "M" + x + " " + (y - r * 1.1) + "L" + (x + r) + " " + (y + r * 0.75) + "L" + (x - r) + " " + (y + r * 0.75) + "Z"; }
    if (shape === "diamond") { return "M" + x + " " + (y - r * 1.15) + "L" + (x + r) + " " + y + "L" + x + " " + (y + r * 1.15) + "L" + (x - r) + " " + y + "Z"; }
    return "M" + (x - r) + " " + y + "a" + r + " " + r + " 0 1 0 " + 2 * r + " 0a" + r + " " + r + " 0 1 0 " + (-2 * r) + " 0Z";
  }
  function natural(a, b) { return String(a).localeCompare(String(b), undefined, {numeric: true}); }
  function clusterName(c) { return c === data.noiseCluster ? "noise" : "cluster " + c; }

  // categories of both colourings: palette colours first, then the shape changes
  function categories(values, isNoise) {
    var counts = {};
    values.forEach(function (v) { counts[v] = (counts[v] || 0) + 1; });
    var keys = Object.keys(counts).sort(natural);
    var plain = keys.filter(function (k) { return !isNoise(k); });
    var noise = keys.filter(isNoise);
    var style = {};
    plain.forEach(function (k, i) {
      style[k] = {colour: data.palette[i % data.palette.length],
                  shape: SHAPES[Math.floor(i / data.palette.length) % SHAPES.length], count: counts[k]};
    });
    noise.forEach(function (k) { style[k] = {colour: data.noise, shape: "circle", count: counts[k]}; });
    return {order: plain.concat(noise), style: style};
  }
  var modes = {
    cluster: {values: data.cluster.map(String), name: function (k) { return clusterName(Number(k)); },
              cats: categories(data.cluster.map(String), function (k) { return Number(k) === data.noiseCluster; })},
    label: {values: data.label, name: function (k) { return k; },
            cats: categories(data.label, function (k) { return k === "unlabelled"; })}
  };
  // the other structures found without labels: the same files by their own clusters, on their own map
  data.alternatives.forEach(function (alt) {
    var values = alt.cluster.map(String);
    modes[alt.key] = {values: values, name: function (k) { return clusterName(Number(k)); }, x: alt.x, y: alt.y,
                      title: alt.title,
                      cats: categories(values, function (k) { return Number(k) === data.noiseCluster; })};
  });

  function px(i) { return PAD + (modes[mode].x || data.x)[i] * (W - 2 * PAD); }
  function py(i) { return H - PAD - (modes[mode].y || data.y)[i] * (H - 2 * PAD); }

  for (var i = 0; i < n; i++) {
    var p = document.createElementNS(NS, "path");
    p.setAttribute("class", "pt");
    p.setAttribute("data-i", String(i));
    svg.appendChild(p);
    points.push(p);
  }

  function recolour(newMode) {
    mode = newMode;
    var m = modes[mode];
    points.forEach(function (p, i) {
      var st = m.cats.style[m.values[i]];
      p.setAttribute("d", shapePath(st.shape, px(i), py(i), R));
      p.setAttribute("fill", st.colour);
      p.setAttribute("data-cat", m.values[i]);
    });
    legend.textContent = "";
    m.cats.order.forEach(function (k) {
      var st = m.cats.style[k];
      var li = document.createElement("li");
      var sw = document.createElementNS(NS, "svg");
      sw.setAttribute("viewBox", "0 0 16 16");
      sw.setAttribute("aria-hidden", "true");
      var path = document.createElementNS(NS, "path");
      path.setAttribute("d", shapePath(st.shape, 8, 8, 6));
      path.setAttribute("fill", st.colour);
      sw.appendChild(path);
      li.appendChild(sw);
      li.appendChild(document.createTextNode(m.name(k) + " (" + st.count + ")"));
      li.addEventListener("mouseenter", function () { highlight(k); });
      li.addEventListener("mouseleave", function () { highlight(null); });
      legend.appendChild(li);
    });
  }
  function highlight(cat) {
    points.forEach(function (p) { p.classList.toggle("dim", cat !== null && p.getAttribute("data-cat") !== cat); });
  }

  function describe(i, el) {
    el.textContent = "";
    var b = document.createElement("b");
    b.textContent = data.name[i];
    el.appendChild(b);
    el.appendChild(document.createElement("br"));
    el.appendChild(document.createTextNode("label: " + data.label[i]));
    el.appendChild(document.createElement("br"));
    el.appendChild(document.createTextNode(clusterName(data.cluster[i])));
    if (modes[mode].title) {  // an alternative structure is shown: its cluster too
      el.appendChild(document.createElement("br"));
      el.appendChild(document.createTextNode(modes[mode].title + ": " + clusterName(Number(modes[mode].values[i]))));
    }
    if (data.thumb[i]) {
      var img = document.createElement("img");
      img.src = data.thumb[i];
      img.alt = data.name[i] + ": thumbnail";
      el.appendChild(img);
    }
  }
  function showTip(i, evt) {
    describe(i, tip);
    var box = svg.getBoundingClientRect();
    var x = evt.clientX - box.left + 12, y = evt.clientY - box.top + 12;
    if (x > box.width - 230) { x -= 250; }
    tip.style.left = x + "px";
    tip.style.top = y + "px";
    tip.hidden = false;
  }
  function play(i) {
    if (current >= 0) { points[current].classList.remove("sel"); }
    current = i;
    points[i].classList.add("sel");
    svg.appendChild(points[i]);  // drawn last: on top
    describe(i, info);
    var link = document.createElement("a");
    link.href = "#cluster-" + data.cluster[i];
    link.textContent = "go to its cluster";
    info.appendChild(link);
    npText.textContent = data.name[i] + " · " + data.label[i] + " · " + clusterName(data.cluster[i]);
    svg.removeAttribute("data-playing");
    if (!data.audio[i]) { npText.textContent += " (no audio)"; return; }
    player.setAttribute("data-i", String(i));
    player.src = data.audio[i];
    var started = player.play();
    if (started && started.catch) {
      started.catch(function (err) {
        if (err.name !== "AbortError") { npText.textContent += " (cannot play: " + err.message + ")"; }
      });
    }
  }
  player.addEventListener("playing", function () { svg.setAttribute("data-playing", player.getAttribute("data-i")); });

  svg.addEventListener("mouseover", function (evt) {
    var t = evt.target;
    if (!t.classList || !t.classList.contains("pt")) { return; }
    var i = Number(t.getAttribute("data-i"));
    showTip(i, evt);
    if (hoverPlay.checked && i !== current) { play(i); }
  });
  svg.addEventListener("mouseout", function (evt) {
    if (evt.target.classList && evt.target.classList.contains("pt")) { tip.hidden = true; }
  });
  svg.addEventListener("click", function (evt) {
    var t = evt.target;
    if (t.classList && t.classList.contains("pt")) { play(Number(t.getAttribute("data-i"))); }
  });
  document.querySelectorAll('input[name="colour"]').forEach(function (radio) {
    radio.addEventListener("change", function () { if (radio.checked) { recolour(radio.value); } });
  });
  // keyboard: with the map focused, arrow keys step through the files (in table order) and play them
  svg.addEventListener("keydown", function (evt) {
    var step = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1}[evt.key];
    if (step === undefined || n === 0) { return; }
    evt.preventDefault();
    play(current < 0 ? 0 : (current + step + n) % n);
  });
  document.addEventListener("click", function (evt) {
    var a = evt.target.closest ? evt.target.closest("a.play") : null;
    if (a) { evt.preventDefault(); play(Number(a.getAttribute("data-i"))); }
  });
  recolour("cluster");
  svg.setAttribute("data-ready", "true");
})();
