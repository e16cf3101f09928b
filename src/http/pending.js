// A cold image may answer 503 while its layers render past the server's
// wait budget: its box shows a placeholder ("Rendering…") instead of a
// broken image, and the image is asked for again, backing off to 10 s, for
// about twenty minutes (the render carries on meanwhile: a 3D layer takes
// minutes). `box` gets the class `ready` once the image has loaded,
// `pending` while it is being retried, `failed` after the last try. A new
// src (a swatch click) starts over; a retry never brings back an old one.
function layercakePending(img, box) {
  var tries = 0, asked = img.getAttribute('src');
  function ready() { tries = 0; box.classList.remove('pending', 'failed'); box.classList.add('ready'); }
  if (img.complete && img.naturalWidth > 0) ready();
  img.addEventListener('load', ready);
  img.addEventListener('error', function () {
    var src = img.getAttribute('src'), srcset = img.getAttribute('srcset');
    if (src !== asked) { asked = src; tries = 0; }
    box.classList.remove('ready');
    if (tries >= 120) { box.classList.remove('pending'); box.classList.add('failed'); return; }
    box.classList.add('pending');
    setTimeout(function () {
      if (img.getAttribute('src') !== src) return; // switched meanwhile
      img.srcset = srcset; img.src = src;
    }, Math.min(10000, 1000 * Math.pow(2, tries++)));
  });
}
