// k6 gives scripts a `console` (log, info, warn, error, debug); @types/k6 does
// not declare it, and the DOM library would declare much that k6 lacks.
declare var console: {
  log(...data: unknown[]): void;
  info(...data: unknown[]): void;
  warn(...data: unknown[]): void;
  error(...data: unknown[]): void;
  debug(...data: unknown[]): void;
};
