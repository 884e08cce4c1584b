// How git reads a repository string (a URL, scp-like ssh, or a path on this host) and the server of an ssh one: pure, for the manifest's rules and the deploy key alike.

/** An ssh repository's server: its host, its port when one is given, and the name known_hosts gives it. */
export interface SshRemote {
  host: string;
  port?: number;
  /** `host`, or `[host]:port` for a port other than 22: how ssh names it in known_hosts. */
  known: string;
}

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])$/;

/**
 * The server of an ssh repository URL (`ssh://[user@]host[:port]/path`, `git+ssh://…`, or scp-like
 * `[user@]host:path`), or undefined for any other kind (https, a local path). A host git would
 * accept but that is not a plain host name or address is undefined too (the manifest check says so).
 */
export function sshRemote(repo: string): SshRemote | undefined {
  let host: string | undefined;
  let port: number | undefined;
  const url = /^(?:ssh|git\+ssh|ssh\+git):\/\/(?:[^@/]*@)?(\[[^\]/]*\]|[^:/]*)(?::([0-9]*))?\//.exec(repo);
  if (url) {
    host = url[1];
    port = url[2] ? Number(url[2]) : undefined;
  } else if (repoForm(repo) === 'scp') {
    const scp = /^(?:[^@/:]*@)?(\[[^\]/]*\]|[^:/[\]]+):/.exec(repo);
    if (scp) host = scp[1];
  }
  if (host === undefined || !HOST.test(host) || (port !== undefined && (port < 1 || port > 65535))) return undefined;
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  return { host: bare, port, known: port !== undefined && port !== 22 ? `[${bare}]:${port}` : bare };
}

/**
 * How git reads a repository string: a URL (`scheme://…`), scp-like ssh (`[user@]host:path`: git's rule is a
 * ':' before any '/'), or a path on this host.
 */
export function repoForm(repo: string): 'url' | 'scp' | 'path' {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(repo)) return 'url';
  return /^[^/]*:/.test(repo) ? 'scp' : 'path';
}

/** Whether a repository URL names an ssh transport at all (even one sshRemote cannot read). */
export function looksLikeSsh(repo: string): boolean {
  return /^(?:ssh|git\+ssh|ssh\+git):\/\//.test(repo) || repoForm(repo) === 'scp';
}
