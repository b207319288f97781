package loyalty_test

import (
	"github.com/godwit-dev/godwit/internal/loyalty/program"
)

// instantVesting is the default program with every activity type vesting at
// once, for tests about something other than when points vest.
func instantVesting() *program.Program {
	p := program.Default()
	p.Vesting = program.Vesting{}
	return p
}
