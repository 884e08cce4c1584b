// adapter-node writes a standalone server to build/; it takes a systemd socket (LISTEN_FDS) natively.
import adapter from '@sveltejs/adapter-node';

export default { kit: { adapter: adapter() } };
