package ws

import "errors"

func asClose(err error, target any) bool { return errors.As(err, target) }
