package hub

import (
	"context"
	"slices"
)

// tenantWorkers runs one goroutine per tenant, started and stopped as the
// key directory's tenants come and go (the rollout controller's and the
// console's).
type tenantWorkers struct {
	run     func(ctx context.Context, tenant string)
	workers map[string]tenantWorker
}

type tenantWorker struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func newTenantWorkers(run func(ctx context.Context, tenant string)) *tenantWorkers {
	return &tenantWorkers{run: run, workers: map[string]tenantWorker{}}
}

// sync starts a worker, under ctx, for each tenant that has none and
// stops the workers of tenants no longer listed.
func (t *tenantWorkers) sync(ctx context.Context, tenants []string) {
	for _, name := range tenants {
		if _, ok := t.workers[name]; ok {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		w := tenantWorker{cancel: cancel, done: make(chan struct{})}
		t.workers[name] = w
		go func() {
			defer close(w.done)
			t.run(wctx, name)
		}()
	}
	for name, w := range t.workers {
		if !slices.Contains(tenants, name) {
			w.cancel()
			<-w.done
			delete(t.workers, name)
		}
	}
}

// stop stops every worker and waits for them.
func (t *tenantWorkers) stop() {
	for _, w := range t.workers {
		w.cancel()
	}
	for name, w := range t.workers {
		<-w.done
		delete(t.workers, name)
	}
}
