// Types of uvu-counts.mjs (the runner is plain JS so it runs without tsx).
export declare function uvuCounts(stdout: string): { passed: number; failed: number; skipped: number } | undefined;
