package events

import "time"

// The data of each event type. Field names are the wire names; the schemas
// in schemas/ describe the same. No event carries an e-mail address, a card
// number or a secret: consumers that need a member's contact details ask
// the API with the member id.

// MemberCreatedData is the data of member.created.
type MemberCreatedData struct {
	MemberID string `json:"member_id"`
	Tier     string `json:"tier"`
}

// PointsEarnedData is the data of points.earned.
type PointsEarnedData struct {
	MemberID      string `json:"member_id"`
	TransactionID string `json:"transaction_id"`
	ActivityType  string `json:"activity_type"`
	ExternalID    string `json:"external_id"`
	OrderID       string `json:"order_id,omitempty"`
	Points        int64  `json:"points"`
	BasePoints    int64  `json:"base_points"`
	TierBonus     int64  `json:"tier_bonus"`
	PromoBonus    int64  `json:"promo_bonus"`
	StatusPoints  int64  `json:"status_points"`
	Balance       int64  `json:"balance"`
	Tier          string `json:"tier"`
}

// PointsRedeemedData is the data of points.redeemed: a redemption fulfilled
// or points spent at checkout.
type PointsRedeemedData struct {
	MemberID      string `json:"member_id"`
	TransactionID string `json:"transaction_id"`
	Points        int64  `json:"points"`
	Reference     string `json:"reference"`
	RedemptionID  string `json:"redemption_id,omitempty"`
	OptionID      string `json:"option_id,omitempty"`
	Balance       int64  `json:"balance"`
}

// PointsTransferredData is the data of points.transferred: to another
// member (to_member_id) or to a partner program (partner_id).
type PointsTransferredData struct {
	MemberID      string `json:"member_id"`
	TransactionID string `json:"transaction_id"`
	TransferID    string `json:"transfer_id"`
	Points        int64  `json:"points"`
	ToMemberID    string `json:"to_member_id,omitempty"`
	PartnerID     string `json:"partner_id,omitempty"`
	Balance       int64  `json:"balance"`
}

// PointsReversedData is the data of points.reversed. Points is the change
// to the member's balance (negative when earned points are taken back).
type PointsReversedData struct {
	MemberID              string `json:"member_id"`
	TransactionID         string `json:"transaction_id"`
	ReversedTransactionID string `json:"reversed_transaction_id"`
	Points                int64  `json:"points"`
	Reason                string `json:"reason"`
	Balance               int64  `json:"balance"`
}

// PointsExpiredData is the data of points.expired.
type PointsExpiredData struct {
	MemberID      string `json:"member_id"`
	TransactionID string `json:"transaction_id"`
	Points        int64  `json:"points"`
	Balance       int64  `json:"balance"`
}

// PointsExpiringData is the data of points.expiring: a warning, sent once
// per lot, that a lot's remaining points expire at ExpiresAt.
type PointsExpiringData struct {
	MemberID  string    `json:"member_id"`
	LotID     string    `json:"lot_id"`
	Points    int64     `json:"points"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Tier change directions and reasons.
const (
	DirectionUp   = "up"
	DirectionDown = "down"

	// ReasonQualified: the member's status points reached a higher tier.
	ReasonQualified = "qualified"
	// ReasonRequalification: the yearly requalification moved the member.
	ReasonRequalification = "requalification"
	// ReasonReversal: a reversed earning took back the status points that
	// had upgraded the member.
	ReasonReversal = "reversal"
	// ReasonMerge: a duplicate member's status points or tier were merged in.
	ReasonMerge = "merge"
	// ReasonSoftLanding: the yearly requalification moved the member down
	// one tier only, where their status points alone would have dropped
	// them further (the program's requalification.soft_landing).
	ReasonSoftLanding = "soft_landing"
	// ReasonGraceExpired: the member kept their tier for the program's
	// grace period after a requalification that would have dropped them,
	// did not requalify during it, and dropped when it ended.
	ReasonGraceExpired = "grace_expired"
)

// TierChangedData is the data of tier.changed.
type TierChangedData struct {
	MemberID     string `json:"member_id"`
	FromTier     string `json:"from_tier"`
	ToTier       string `json:"to_tier"`
	Direction    string `json:"direction"`
	Reason       string `json:"reason"`
	StatusPoints int64  `json:"status_points"`
}

// Money is an amount in minor units of a currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// OrderConfirmedData is the data of order.confirmed.
type OrderConfirmedData struct {
	OrderID      string `json:"order_id"`
	CheckoutID   string `json:"checkout_id"`
	MemberID     string `json:"member_id,omitempty"`
	Total        Money  `json:"total"`
	PointsUsed   int64  `json:"points_used"`
	PointsEarned int64  `json:"points_earned"`
}

// OrderRefundedData is the data of order.refunded.
type OrderRefundedData struct {
	OrderID        string `json:"order_id"`
	MemberID       string `json:"member_id,omitempty"`
	Refunded       Money  `json:"refunded"`
	PointsReturned int64  `json:"points_returned"`
}

// CheckoutFailedData is the data of checkout.failed: the saga stopped at
// FailedStep with the problem code Code, and undid what it had done.
type CheckoutFailedData struct {
	CheckoutID string `json:"checkout_id"`
	MemberID   string `json:"member_id,omitempty"`
	FailedStep string `json:"failed_step"`
	Code       string `json:"code"`
}

// WebhookDisabledData is the data of webhook.subscription_disabled.
type WebhookDisabledData struct {
	SubscriptionID      string `json:"subscription_id"`
	ConsecutiveFailures int    `json:"consecutive_failures"`
	Reason              string `json:"reason"`
}
