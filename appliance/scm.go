package appliance

import (
	"context"
	"runtime"
	"sync"

	"github.com/kardianos/service"
)

// runService runs serve until it returns. When Windows' service control
// manager started the process, serve runs under it: the manager sees the
// service start, and its stop request cancels serve's context. A failure of
// serve ends the process, which the manager sees as the service failing.
// Elsewhere (and run from a console) it only calls serve: launchd and
// systemd stop a service with SIGTERM.
func runService(ctx context.Context, name string, serve func(context.Context) error) error {
	if runtime.GOOS != "windows" || service.Interactive() {
		return serve(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := &scmProgram{cancel: cancel, stopping: make(chan struct{}), served: make(chan struct{})}
	s, err := service.New(p, &service.Config{Name: name})
	if err != nil {
		return err
	}
	managed := make(chan error, 1)
	go func() { managed <- s.Run() }()
	err = serve(ctx)
	close(p.served)
	select {
	case <-p.stopping:
		<-managed // the manager has been told that the service stopped
	default:
	}
	return err
}

// scmProgram is the service as the Windows service control manager drives
// it: it is already running when the manager asks it to start.
type scmProgram struct {
	cancel   context.CancelFunc
	once     sync.Once
	stopping chan struct{} // closed on the manager's stop request
	served   chan struct{} // closed once serve returned
}

func (p *scmProgram) Start(service.Service) error { return nil }

func (p *scmProgram) Stop(service.Service) error {
	p.once.Do(func() { close(p.stopping) })
	p.cancel()
	<-p.served
	return nil
}
