"""The seen-pages index: what earlier audits read, so an audit can tell new text from old."""
