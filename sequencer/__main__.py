from sequencer.launch import main

main()
