package leaf

import "github.com/canopy-iot/canopy/leaf/gpio"

// UseGPIOPins makes the node take its GPIO pins from open instead of
// periph's drivers (tests use periph's gpiotest pins). Call it before Run.
func (n *Node) UseGPIOPins(open gpio.Opener) {
	n.gpio = gpio.New(n.cfg.GPIO, localBus{n.nats.NewInternal("gpio"), n}, gpio.Options{Open: open}, n.log)
}
