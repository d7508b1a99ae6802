"""clustering."""




