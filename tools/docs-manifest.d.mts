// Types of docs-manifest.mjs (the generator is plain JS so `npm run docs` runs it with node alone).
export declare const SCHEMA: string;
export declare const PAGE: string;
export declare function yamlValue(v: unknown): string;
export declare function renderReference(schemaText: string): string;
