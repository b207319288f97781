package program

import (
	"errors"
	"fmt"
)

// ErrInvalidProgram is wrapped by every error about the program file itself;
// the process should refuse to start on it.
var ErrInvalidProgram = errors.New("invalid program")

// FieldError names one bad field of a program file by its path, as in
// "tiers[2].multiplier". Parse returns all of them joined, so a user fixes a
// file in one pass; errors.As finds the first.
type FieldError struct {
	// Path is the field's path in the YAML document ("" for the document).
	Path string
	// Problem says what is wrong with it.
	Problem string
}

// Error formats the error as "program: <path>: <problem>".
func (e *FieldError) Error() string {
	if e.Path == "" {
		return "program: " + e.Problem
	}
	return "program: " + e.Path + ": " + e.Problem
}

// Unwrap lets errors.Is(err, ErrInvalidProgram) hold for every FieldError.
func (e *FieldError) Unwrap() error { return ErrInvalidProgram }

// ErrInvalidActivity is the parent of every error about an activity that can
// never earn (a missing field, an unknown fare class, a bad merchant category
// code, a currency the program does not take). errors.Is(err,
// ErrInvalidActivity) is the check for "the client sent something wrong";
// the API answers 422. The specific errors below are for finer codes.
var ErrInvalidActivity = errors.New("invalid activity")

// Specific activity errors; each also matches ErrInvalidActivity.
var (
	// ErrUnknownActivityType means the activity type is not one of ActivityTypes.
	ErrUnknownActivityType = fmt.Errorf("%w: unknown activity type", ErrInvalidActivity)
	// ErrUnknownFareClass means the fare class is not in the program's fare table.
	ErrUnknownFareClass = fmt.Errorf("%w: unknown fare class", ErrInvalidActivity)
	// ErrInvalidMerchantCategory means the merchant category code is not four digits.
	ErrInvalidMerchantCategory = fmt.Errorf("%w: invalid merchant category code", ErrInvalidActivity)
	// ErrCurrencyNotAccepted means the amount is in a currency other than the
	// program currency. Earning never converts currencies: the rate would be
	// a policy decision hidden in the arithmetic.
	ErrCurrencyNotAccepted = fmt.Errorf("%w: currency not accepted", ErrInvalidActivity)
)

// ErrInvalidPromotion means a promotion can never work as written (no window,
// both or neither of multiplier and fixed bonus, …). The admin API answers 422.
var ErrInvalidPromotion = errors.New("invalid promotion")

// Errors for transfers to partners and to other members. Each is a client
// error (422); ErrUnknownPartner is a 404 or 422 at the API's choice.
var (
	// ErrUnknownPartner means no partner has the id.
	ErrUnknownPartner = errors.New("unknown partner")
	// ErrTransferBelowMinimum means fewer points than the minimum were asked for.
	ErrTransferBelowMinimum = errors.New("transfer below minimum")
	// ErrTransferIncrement means the points are not a whole number of increments.
	ErrTransferIncrement = errors.New("transfer not a multiple of the increment")
	// ErrTransferLimitExceeded means a member-to-member transfer would take the
	// sender past the yearly limit.
	ErrTransferLimitExceeded = errors.New("yearly transfer limit exceeded")
	// ErrInvalidPoints means a points amount is zero or negative where it must
	// be positive, or too large to be real.
	ErrInvalidPoints = errors.New("invalid points amount")
)
