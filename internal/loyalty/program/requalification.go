package program

// Requalification softens the yearly tier requalification. The zero value
// is the strict rule: a member drops straight to the tier their status
// points reach, on the day the job runs after the year ends.
type Requalification struct {
	// SoftLanding limits a requalification to a drop of one tier: a
	// Platinum member whose points reach only Blue becomes Gold.
	SoftLanding bool
	// GraceDays keeps a member who would drop in their tier that many days
	// into the new status year; if by then their status points of the new
	// year reach the tier they keep it, otherwise they drop (with
	// SoftLanding, one tier). 0: no grace. At most 364, so a grace ends
	// before the next requalification.
	GraceDays int
	// NoticeDays is how many days before a drop the member's record says
	// it is coming (will_downgrade). 0: no notice.
	NoticeDays int
}

type rawRequalification struct {
	SoftLanding bool `yaml:"soft_landing"`
	GraceDays   int  `yaml:"grace_days"`
	NoticeDays  int  `yaml:"notice_days"`
}

// Limits of Requalification's day counts.
const (
	maxGraceDays  = 364
	maxNoticeDays = 366
)

func (c *checker) requalification(r *rawRequalification) Requalification {
	if r == nil {
		return Requalification{}
	}
	if r.GraceDays < 0 || r.GraceDays > maxGraceDays {
		c.add("requalification.grace_days", "must be between 0 and %d", maxGraceDays)
	}
	if r.NoticeDays < 0 || r.NoticeDays > maxNoticeDays {
		c.add("requalification.notice_days", "must be between 0 and %d", maxNoticeDays)
	}
	return Requalification{SoftLanding: r.SoftLanding, GraceDays: r.GraceDays, NoticeDays: r.NoticeDays}
}

// Landing is the tier a requalification moves a member of tier from to,
// when their status points reach reached: reached itself, except that with
// SoftLanding a drop of more than one tier stops one below from. soft
// reports whether the soft landing changed the answer.
func (p *Program) Landing(from, reached Tier) (to Tier, soft bool) {
	if !p.Requalification.SoftLanding || from.Rank <= 0 || reached.Rank >= from.Rank-1 {
		return reached, false
	}
	for _, t := range p.Tiers {
		if t.Rank == from.Rank-1 {
			return t, true
		}
	}
	return reached, false
}
