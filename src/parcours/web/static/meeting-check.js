// The join page's device check: the camera in a preview, the microphone on a level meter.
// Nothing is sent anywhere; the streams stop when the page goes on to the room.
(() => {
  "use strict";
  const status = document.getElementById("device-status");
  const words = document.getElementById("check-words").dataset;
  const meter = document.getElementById("mic-level");
  navigator.mediaDevices
    .getUserMedia({ audio: true, video: true })
    .then((stream) => {
      document.getElementById("preview").srcObject = stream;
      status.textContent = words.ok;
      const ctx = new AudioContext();
      const analyser = ctx.createAnalyser();
      ctx.createMediaStreamSource(stream).connect(analyser);
      const data = new Uint8Array(analyser.fftSize);
      const tick = () => {
        analyser.getByteTimeDomainData(data);
        let peak = 0;
        for (const v of data) peak = Math.max(peak, Math.abs(v - 128) / 128);
        meter.value = peak;
        requestAnimationFrame(tick);
      };
      tick();
      window.addEventListener("pagehide", () => stream.getTracks().forEach((t) => t.stop()));
    })
    .catch(() => {
      status.textContent = words.denied;
    });
})();
