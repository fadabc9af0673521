module eventscale.local/loadgen

go 1.22
