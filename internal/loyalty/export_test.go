package loyalty

// BalanceAtQuery is the as-of balance query, for its query-plan test.
const BalanceAtQuery = balanceAtQuery
