"""analysis."""




