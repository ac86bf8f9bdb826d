// Package autoexport keeps a repository up to date with a mock service's
// state: an [Exporter] subscribes to the service's
// core.StateChangeNotifier and exports each (account, region) that
// changed, under the policies LocalStack's snapshot save strategies offer:
//
//   - on change, debounced: once no change has come for Options.Debounce,
//     and at the latest Options.MaxDelay after the first unexported
//     change, so a constant stream of changes still gets exported;
//   - scheduled: every Options.Interval;
//   - on request: [Exporter.Flush];
//   - on shutdown: [Exporter.Close] exports the last changes.
//
// The listener it subscribes only marks the pair dirty and wakes a worker:
// it never blocks the goroutine that mutated the service and does no I/O.
// Exports of one Exporter never overlap, and each reads the state as it is
// when it runs, so the newest snapshot never lags behind a change it
// already reported as exported.
package autoexport
