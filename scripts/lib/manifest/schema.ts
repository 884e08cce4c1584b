// The manifest's JSON Schema and its ajv validator, compiled when first used; the compiled kit (dist/) gets standalone code generated from this same setup by scripts/compile.mjs instead.
import { readFileSync } from 'node:fs';
import { Ajv, type Options, type ValidateFunction } from 'ajv';
import { kitPaths } from '../run/kit.ts';

/** The schema's validator (ajv fills in the schema's defaults as it validates) and the schema itself. */
export interface SchemaValidator {
  validate: ValidateFunction;
  schema: Record<string, unknown>;
}

/**
 * The one ajv set-up for the manifest, here and in scripts/compile.mjs: every error at once, defaults
 * filled in, each error carrying its value and schema (the messages quote both), x-error and x-type-error allowed.
 */
export function manifestAjv(extra: Options = {}): Ajv {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, ...extra });
  ajv.addKeyword({ keyword: 'x-error', schemaType: 'string' });
  ajv.addKeyword({ keyword: 'x-type-error', schemaType: 'string' });
  return ajv;
}

/** config/manifest.schema.json as an object. */
export function readManifestSchema(file = kitPaths.schema): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

let compiled: SchemaValidator | undefined;

/** The validator, compiled from the schema file on first use (≈ 50 ms, which the compiled kit does not pay). */
export function manifestValidator(): SchemaValidator {
  if (!compiled) {
    const schema = readManifestSchema();
    compiled = { validate: manifestAjv().compile(schema), schema };
  }
  return compiled;
}
