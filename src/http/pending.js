// A cold image may answer 503 while its layers render past the server's
// wait budget: its box shows a placeholder ("Rendering…") instead of a
// broken image, and the image is asked for again, backing off to 8 s, for
// about five minutes (the render carries on meanwhile). `box` gets the
// class `ready` once the image has loaded, `pending` while it is being
// retried, `failed` after the last try.
function layercakePending(img, box) {
  var tries = 0;
  function ready() { box.classList.remove('pending', 'failed'); box.classList.add('ready'); }
  if (img.complete && img.naturalWidth > 0) ready();
  img.addEventListener('load', ready);
  img.addEventListener('error', function () {
    box.classList.remove('ready');
    if (tries >= 40) { box.classList.remove('pending'); box.classList.add('failed'); return; }
    box.classList.add('pending');
    var src = img.src, srcset = img.srcset;
    setTimeout(function () { img.srcset = srcset; img.src = src; }, Math.min(8000, 1000 * Math.pow(2, tries++)));
  });
}
