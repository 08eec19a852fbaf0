// Command updater is the Hearth update agent (see appliance/update).
package main

import (
	"log"
	"time"
)

func main() {
	log.Printf("updater: starting")
	for {
		time.Sleep(time.Hour)
	}
}
