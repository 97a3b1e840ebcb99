//! The operations a run issues, under the names the report prints.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Writes an existing record (YCSB's update).
    Put,
    /// Reads a record (YCSB's read).
    Get,
    /// Reads records in key order from a chosen one.
    Scan,
    /// Writes a new record, numbered after every record so far.
    Insert,
    /// Reads a record, then writes it (YCSB's read-modify-write), timed as
    /// one operation.
    ReadModifyWrite,
}

impl Op {
    /// Every operation, in report order; `op as usize` indexes it.
    pub const ALL: [Op; 5] = [Op::Put, Op::Get, Op::Scan, Op::Insert, Op::ReadModifyWrite];

    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Scan => "scan",
            Op::Insert => "insert",
            Op::ReadModifyWrite => "rmw",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_names_fit_the_report_column() {
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i);
            // The report's op column is 6 wide.
            assert!(op.name().len() <= 6, "{}", op.name());
        }
    }
}
