from occam.cli import main

main()
