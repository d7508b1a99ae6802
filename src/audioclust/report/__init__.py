"""report."""




