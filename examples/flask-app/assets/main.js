// Loaded by the page; loads lazy.js (its hashed URL is in the script tag) once the page is up.
const lazy = document.querySelector('script[data-lazy]').dataset.lazy;
window.addEventListener('load', () => import(lazy).then((m) => m.show()));
