"""What a person reads: tables, figures, the HTML report and the helpers of the explore notebook."""
