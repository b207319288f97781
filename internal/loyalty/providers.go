package loyalty

import (
	"context"

	"github.com/godwit-dev/godwit/internal/loyalty/program"
)

// The providers a two-phase debit calls between its hold and its capture or
// void: Config.Fulfiller and Config.Partners (nil: the built-in simulators
// of faults.go).

// FulfillmentRequest is what a fulfilment provider is asked to deliver.
type FulfillmentRequest struct {
	RedemptionID string
	MemberID     string
	Option       program.RedemptionOption
	Points       int64
}

// Fulfiller delivers redemptions (books the award seat, ships the mug). It
// returns a confirmation code. An error means nothing was delivered: the
// service then voids the points hold. Implementations must honour ctx.
type Fulfiller interface {
	Fulfill(ctx context.Context, r FulfillmentRequest) (confirmation string, err error)
}

// PartnerTransferRequest is a transfer of points to a partner program.
type PartnerTransferRequest struct {
	TransferID string
	MemberID   string
	Partner    program.Partner
	Points     int64
	Units      int64
}

// PartnerGateway sends transfers to partner programs. An error means the
// partner did not credit the member; the service voids the points hold.
type PartnerGateway interface {
	Transfer(ctx context.Context, r PartnerTransferRequest) (confirmation string, err error)
}
