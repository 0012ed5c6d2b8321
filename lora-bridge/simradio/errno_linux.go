package simradio

import "golang.org/x/sys/unix"

var errEIO error = unix.EIO
