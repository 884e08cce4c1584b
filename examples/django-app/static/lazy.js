// A file loaded after the page: the one an old page asks for after a deploy.
export function show() {
  document.getElementById('lazy').textContent = 'Loaded lazily by v1.';
}
