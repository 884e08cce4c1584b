// Remix 2 as a Vite plugin: `remix vite:build` writes build/server (for remix-serve) and build/client (assets/ content-hashed).
import { vitePlugin as remix } from '@remix-run/dev';
import { defineConfig } from 'vite';

export default defineConfig({ plugins: [remix()] });
